"""The matcher: embeds résumés and jobs and publishes matches."""
