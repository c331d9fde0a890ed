"""The application shell: the `turnwise` entry point and the commands that span packages (data, serve, list, demo)."""
