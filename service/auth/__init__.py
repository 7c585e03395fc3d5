"""Who may use the web app and the API: passwords, sessions, API tokens, roles (DESIGN §7)."""
