"""The pull connector: a REST source polled on a schedule into the landing bucket."""
