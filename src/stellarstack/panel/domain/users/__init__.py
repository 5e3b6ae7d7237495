"""Users: the signed-in user's own profile."""
