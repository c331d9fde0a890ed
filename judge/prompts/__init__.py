"""Judge prompt templates (Jinja), one sub-package per wording version; a wording change is a new version."""
