"""Launch backends: local processes and SLURM through submitit."""
