"""Game servers: deployment, lifecycle and power, console access (spec §8, §14.3)."""
