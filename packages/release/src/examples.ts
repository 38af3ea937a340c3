/*
 * Example configuration, generated from the option schemas in the style of oslo-config-generator's
 * sample files: every option commented out with its help, type and default, so that the file documents
 * itself, changes nothing until an option is uncommented, and cannot drift from the code.
 */
import type { OptionDef, Schema } from '@nmp/common';

function defaultText(d: OptionDef): string {
  if (d.secret) return '';
  if (Array.isArray(d.default)) return d.default.join(', ');
  return String(d.default);
}

function wrap(text: string, width = 100): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out;
}

/** An INI file: `header` lines as comments, then each INI section of `schema` with its options commented out. */
export function sampleIni(header: readonly string[], schema: Schema): string {
  const groups = new Map<string, OptionDef[]>();
  for (const d of Object.values(schema)) groups.set(d.group, [...(groups.get(d.group) ?? []), d]);
  const ordered = [...groups].sort(([a], [b]) => (a === 'DEFAULT' ? -1 : b === 'DEFAULT' ? 1 : 0));
  const out = header.map((l) => (l === '' ? '#' : `# ${l}`));
  for (const [group, defs] of ordered) {
    out.push('', `[${group}]`);
    for (const d of defs) {
      const kind = d.kind === 'enum' ? (d.choices ?? []).join(' | ') : d.kind;
      const notes = [d.help.endsWith('.') ? d.help : `${d.help}.`, `(${kind})`];
      if (d.secret) notes.push('Secret: keep this file unreadable to others, or use the environment file.');
      out.push('', ...wrap(notes.join(' ')).map((l) => `# ${l}`), `#${d.name} = ${defaultText(d)}`.trimEnd());
    }
  }
  return `${out.join('\n')}\n`;
}
