"""Auth plugins (local peer credentials; tokens come with a later issue)."""
