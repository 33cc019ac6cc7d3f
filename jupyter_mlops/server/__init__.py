"""The jupyter_server extension: REST handlers for the JupyterLab frontend."""
