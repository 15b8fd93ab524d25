// Entry point of the bundle. Filled in by the CLI stage; kept minimal so the skeleton builds.
process.stderr.write("virt-aa-hook: not built yet\n");
process.exit(2);
