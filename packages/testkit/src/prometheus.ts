/* Reading the Prometheus text format in tests: the value of one sample, chosen by name and labels. */

/** Value of the first sample named `name` whose labels include `labels`, or undefined. */
export function promSample(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

/** Value of that sample, which must exist (throws, quoting the start of the text, when it does not). */
export function promValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  const v = promSample(text, name, labels);
  if (v === undefined)
    throw new Error(`no sample ${name} ${JSON.stringify(labels)} in:\n${text.slice(0, 3000)}`);
  return v;
}
