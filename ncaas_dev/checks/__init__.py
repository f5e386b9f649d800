"""`ncaas-dev doctor`'s checks (doctor) and the SLURM cluster's (slurm)."""
