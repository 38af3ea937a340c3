/*
 * The metadata versions Nova serves (reference.md §7.2) and the version checks its documents are gated on.
 * Both lists are ordered; a feature "since V" is present for V and every later entry, and `latest` means
 * the last entry.
 */

export const EC2_VERSIONS: readonly string[] = Object.freeze([
  '1.0',
  '2007-01-19',
  '2007-03-01',
  '2007-08-29',
  '2007-10-10',
  '2007-12-15',
  '2008-02-01',
  '2008-09-01',
  '2009-04-04',
]);

export const FOLSOM = '2012-08-10';
export const GRIZZLY = '2013-04-04';
export const HAVANA = '2013-10-17';
export const LIBERTY = '2015-10-15';
export const NEWTON_ONE = '2016-06-30';
export const NEWTON_TWO = '2016-10-06';
export const OCATA = '2017-02-22';
export const ROCKY = '2018-08-27';
export const VICTORIA = '2020-10-14';
export const EPOXY = '2025-04-04';

export const OPENSTACK_VERSIONS: readonly string[] = Object.freeze([
  FOLSOM,
  GRIZZLY,
  HAVANA,
  LIBERTY,
  NEWTON_ONE,
  NEWTON_TWO,
  OCATA,
  ROCKY,
  VICTORIA,
  EPOXY,
]);

/** `requested` (already resolved from `latest`) is `required` or later in `versions`. */
export function atLeast(requested: string, required: string, versions: readonly string[]): boolean {
  return versions.indexOf(requested) >= versions.indexOf(required);
}

/**
 * The OpenStack version listing as of `today` (UTC `YYYY-MM-DD`): versions dated later are hidden, though
 * still served when asked for by name, as Nova does so that future versions can be tested.
 */
export function visibleOpenStackVersions(today: string): string[] {
  return [...OPENSTACK_VERSIONS.filter((v) => v <= today), 'latest'];
}
