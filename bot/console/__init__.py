"""The staff console under /console/: server-rendered Jinja2 pages in Chinese, htmx (vendored) for updates."""
