import t from 'tap';
import { colourLevel } from '../common/colour.js';

t.test('colour only on a terminal, NO_COLOR turns it off, FORCE_COLOR wins', async (t) => {
  t.equal(colourLevel({}, true), 1);
  t.equal(colourLevel({}, false), 0, 'pipe or file: plain');
  t.equal(colourLevel({ TERM: 'dumb' }, true), 0);
  t.equal(colourLevel({ NO_COLOR: '1' }, true), 0);
  t.equal(colourLevel({ NO_COLOR: '' }, true), 1, 'empty NO_COLOR is ignored');
  t.equal(colourLevel({ FORCE_COLOR: '1' }, false), 1);
  t.equal(colourLevel({ FORCE_COLOR: '3', NO_COLOR: '1' }, false), 3);
  t.equal(colourLevel({ FORCE_COLOR: '0' }, true), 0);
  t.equal(colourLevel({ FORCE_COLOR: '' }, false), 1);
});
