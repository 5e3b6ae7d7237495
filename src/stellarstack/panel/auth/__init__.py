"""Identity: passwords, server-side sessions and the sign-in flow."""
