"""The `gradiend-hf` command line. Every subcommand is a module with `main()`, so it also runs under
`accelerate launch -m gradiend_hf.cli.<name> ...`."""
