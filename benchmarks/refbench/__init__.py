"""Side-by-side benchmark of gradiend-hf against the reference package `gradiend==0.2.3` (issue 18).

`benchmarks/bench_vs_reference.py` is the command; this package holds its parts:

- `workloads`: the fixed workloads (model, data sizes, steps, evaluation caps) both packages run;
- `setup_env`: the reference's own venv and the shared models (`--setup`);
- `data`: the he/she name-template data and the neutral sentences;
- `measure`: timing and memory helpers used by both runners (standard library and psutil only, so the reference's
  venv can import it without gradiend-hf);
- `reference_runner`, `hf_runner`: the two child scripts, each printing one JSON result;
- `report`: the comparison table and its ratios.
"""
