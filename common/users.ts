// -u/--uid takes a number or a user name, as bcc's tools do.
import { readFileSync } from 'node:fs';
import { invalidValue } from './errors.js';

const MAX_UID = 0xfffffffe; // (uid_t)-1 means "no uid"

export function parseUser(option: string, value: unknown): number {
  const text = String(value).trim();
  if (/^\d+$/.test(text)) {
    if (Number(text) > MAX_UID) throw invalidValue(option, text, `a uid is at most ${MAX_UID}`);
    return Number(text);
  }
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    // no passwd file: only numeric uids can be given
  }
  for (const line of passwd.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name === text && uid !== undefined) return Number(uid);
  }
  throw invalidValue(option, text, 'not a uid or a known user name');
}
