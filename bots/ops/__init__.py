"""Operating a fleet on one host: the supervisor (`fleet up`), the local stack (`stack up`), the alert
webhook receiver and the live table."""
