#!/usr/bin/env bash
# FG-AdaHAT Table 2 (BWT, FWT); see scripts/reproduce_fgadahat.sh for the options (QUICK=1, SEEDS, JOBS, ...).
exec bash "$(dirname "$0")/reproduce_fgadahat.sh" table2
