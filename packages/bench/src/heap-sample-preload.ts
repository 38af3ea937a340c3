// Loaded with `--import` into a process the agent-gc benchmark measures: V8's sampling heap profiler
// (through node:inspector, objects already collected included) from NMP_HS_START_MS after the start for
// NMP_HS_DUR_MS; the profile goes to NMP_HS_OUT, `<out>.started` and `<out>.stopped` mark the window.
// Benchmark code only.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.NMP_HS_OUT;
if (out) {
  const session = new Session();
  session.connect();
  const interval = Number(process.env.NMP_HS_INTERVAL ?? 1024);
  setTimeout(
    () => {
      session.post('HeapProfiler.enable', () =>
        session.post(
          'HeapProfiler.startSampling',
          {
            samplingInterval: interval,
            includeObjectsCollectedByMajorGC: true,
            includeObjectsCollectedByMinorGC: true,
          },
          () => {
            writeFileSync(`${out}.started`, String(Date.now()));
            setTimeout(
              () =>
                session.post('HeapProfiler.stopSampling', (err, r) => {
                  writeFileSync(
                    out,
                    err ? JSON.stringify({ error: String(err) }) : JSON.stringify(r.profile),
                  );
                  writeFileSync(`${out}.stopped`, String(Date.now()));
                }),
              Number(process.env.NMP_HS_DUR_MS ?? 5000),
            ).unref();
          },
        ),
      );
    },
    Number(process.env.NMP_HS_START_MS ?? 6000),
  ).unref();
}
