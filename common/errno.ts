// Linux errno names, as Node knows them for this platform.

let errnoNames: Map<number, string> | undefined;

/**
 * The name of a Linux errno (EAGAIN over EWOULDBLOCK, EOPNOTSUPP over
 * ENOTSUP). node:os, where Node keeps them, is loaded at the first name
 * asked for: a start has no use for it (loading it cost ~0.7 ms here, 18 ms
 * of a start in a 6.1 guest, instructions counted).
 */
export function errnoName(errno: number): string | undefined {
  errnoNames ??= new Map<number, string>(
    Object.entries(process.getBuiltinModule('node:os').constants.errno as Record<string, number>)
      .filter(([name]) => name !== 'EWOULDBLOCK' && name !== 'ENOTSUP')
      .map(([name, value]) => [value, name]),
  );
  return errnoNames.get(errno);
}
