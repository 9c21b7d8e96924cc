// Linux errno names, as Node knows them for this platform.
import { constants as osConstants } from 'node:os';

/** Linux errno names by number (EAGAIN over EWOULDBLOCK, EOPNOTSUPP over ENOTSUP). */
const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno as Record<string, number>)
    .filter(([name]) => name !== 'EWOULDBLOCK' && name !== 'ENOTSUP')
    .map(([name, value]) => [value, name]),
);

export function errnoName(errno: number): string | undefined {
  return ERRNO_NAMES.get(errno);
}
