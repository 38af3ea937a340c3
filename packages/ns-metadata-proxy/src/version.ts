/* The package version (package.json), read once. */
import { packageVersion } from '@nmp/common';

export const VERSION: string = packageVersion(import.meta.url);
