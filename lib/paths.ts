import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = dirname(dirname(fileURLToPath(import.meta.url)));
export const overlaysDir = join(projectRoot, 'overlays');
export const templatesDir = join(projectRoot, 'templates');
export const defaultSiteDir = join(overlaysDir, 'sites', 'default');
export const defaultCacheDir = join(projectRoot, '.cache');
export const defaultOutPath = join(projectRoot, 'out', 'knoppix-openssi.iso');
