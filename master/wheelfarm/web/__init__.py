"""Stage 7, the web face next to Buildbot's UI: the URL tree (site), the package,
campaign and workers pages and badges from Jinja2 templates, the status records they
render from, who may act (access) and the web server's guards."""
