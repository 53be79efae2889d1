// Writes the small PNG scenes the fake pkg (www/pkg-fake/) serves as sample
// images, with their index.json files. Deterministic; run once by hand:
//   node tests/browser/make-fake-samples.mjs
import { deflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../www/pkg-fake/samples');

function crc32(buf) {
  let c;
  const table = [];
  for (let n = 0; n < 256; n++) {
    c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  let crc = 0xffffffff;
  for (const b of buf) crc = table[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function png(width, height, rgb) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    rgb.copy(raw, y * (width * 3 + 1) + 1, y * width * 3, (y + 1) * width * 3);
  }
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}

const COLORS = [
  [200, 60, 50],
  [40, 140, 200],
  [240, 190, 40],
];

function scene(width, height, count) {
  const rgb = Buffer.alloc(width * height * 3);
  const base = [60 + rand() * 80, 90 + rand() * 80, 70 + rand() * 60];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const t = (x + y) / (width + height);
      rgb[i] = base[0] * (0.7 + 0.6 * t);
      rgb[i + 1] = base[1] * (1.2 - 0.5 * t);
      rgb[i + 2] = base[2];
    }
  }
  const boxes = [];
  for (let k = 0; k < count; k++) {
    const cls = Math.floor(rand() * 3);
    const w = Math.round(30 + rand() * 60);
    const h = cls === 2 ? Math.round(w / 3) : w;
    const x0 = Math.round(rand() * (width - w - 4)) + 2;
    const y0 = Math.round(rand() * (height - h - 4)) + 2;
    const [r, g, b] = COLORS[cls];
    for (let y = y0; y < y0 + h; y++) {
      for (let x = x0; x < x0 + w; x++) {
        if (cls === 1) {
          const dx = x - (x0 + w / 2);
          const dy = y - (y0 + h / 2);
          if (dx * dx + dy * dy > (w / 2) * (w / 2)) continue;
        }
        const i = (y * width + x) * 3;
        rgb[i] = r;
        rgb[i + 1] = g;
        rgb[i + 2] = b;
      }
    }
    boxes.push({ bbox: { x0, y0, x1: x0 + w, y1: y0 + h }, class: cls });
  }
  return { rgb, boxes };
}

function write(dir, name, width, height, count) {
  const { rgb, boxes } = scene(width, height, count);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), png(width, height, rgb));
  return boxes;
}

const transfer = [];
for (let i = 0; i < 4; i++) {
  const name = `scene-${i + 1}.png`;
  write(join(root, 'transfer'), name, 320, 240, 2 + (i % 3));
  transfer.push(name);
}
writeFileSync(join(root, 'transfer/index.json'), JSON.stringify(transfer, null, 1) + '\n');

const history = [];
for (let i = 0; i < 3; i++) {
  const file = `${i}.png`;
  const boxes = write(join(root, 'history'), file, 256, 256, 3);
  history.push({ file, boxes });
}
writeFileSync(join(root, 'history/index.json'), JSON.stringify(history, null, 1) + '\n');
console.log(`wrote ${transfer.length} transfer and ${history.length} history samples under ${root}`);
