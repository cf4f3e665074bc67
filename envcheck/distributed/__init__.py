"""Distributed check: all-reduce across every rank of every node, under torchrun or srun.

    torchrun --nproc-per-node 2 -m envcheck.distributed --out result.json   # one node
    srun ... python -m envcheck.distributed --out result.json                # SLURM

ranks.py is one rank (imports torch), launch.py starts torchrun for verify and the bench,
bandwidth.py holds the nccl-tests arithmetic. Importing this package imports no framework.
"""

# Test hook: "die:RANK" makes that rank kill itself, "hang:RANK" makes it sleep forever,
# "oom:RANK" makes it raise torch.OutOfMemoryError as a full GPU does, right after the process
# group is up. Used by the tests to prove each becomes a FAIL with the right diagnosis.
FAULT_ENV = "ENVCHECK_DIST_FAULT"
