/** `node dist/src/psp-sim/cli.js [--port 4100] [--host 127.0.0.1]`: the psp-sim as its own process. */
import { runPspSim } from './server.js';

runPspSim(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
