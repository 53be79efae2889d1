// Decoding images locally (createImageBitmap), reading their RGBA pixels and
// collecting image files from pickers, folders and drops. Nothing is uploaded.

const IMAGE_EXTENSIONS = /\.(png|jpe?g|gif|bmp|webp|avif|ico)$/i;

/** Whether a File looks like an image the browser may decode. */
export function looksLikeImage(file) {
  return (file.type && file.type.startsWith('image/')) || IMAGE_EXTENSIONS.test(file.name);
}

/**
 * Decodes a Blob into a bitmap whose longer side is at most `maxSide`
 * (the working image: every box on the page is in its pixels).
 * Throws an Error with a readable message when the browser cannot decode it.
 */
export async function decodeImage(blob, name, maxSide) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch (e) {
    const why = String(e && e.message ? e.message : e).replace(/[.\s]+$/, '');
    throw new Error(`“${name}” could not be decoded as an image (${why}).`);
  }
  const { width, height } = bitmap;
  if (!width || !height) {
    bitmap.close();
    throw new Error(`“${name}” is an empty image.`);
  }
  const scale = Math.min(1, maxSide / Math.max(width, height));
  if (scale < 1) {
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const small = await createImageBitmap(bitmap, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
    bitmap.close();
    return { bitmap: small, width: w, height: h, originalWidth: width, originalHeight: height };
  }
  return { bitmap, width, height, originalWidth: width, originalHeight: height };
}

let scratch = null;

/** The RGBA bytes of a bitmap (width*height*4). */
export function rgbaOf(bitmap) {
  const { width, height } = bitmap;
  if (!scratch) scratch = document.createElement('canvas');
  scratch.width = width;
  scratch.height = height;
  const ctx = scratch.getContext('2d', { willReadFrequently: true });
  ctx.clearRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, width, height).data;
  // Shrink the scratch canvas so a large image does not stay in memory.
  scratch.width = 1;
  scratch.height = 1;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Draws a bitmap into a thumbnail canvas, letterboxed. */
export function drawThumbnail(canvas, bitmap) {
  const dpr = window.devicePixelRatio || 1;
  const cw = 96;
  const ch = 64;
  canvas.width = cw * dpr;
  canvas.height = ch * dpr;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#ddd';
  ctx.fillRect(0, 0, cw, ch);
  const s = Math.min(cw / bitmap.width, ch / bitmap.height);
  const w = bitmap.width * s;
  const h = bitmap.height * s;
  ctx.drawImage(bitmap, (cw - w) / 2, (ch - h) / 2, w, h);
}

/** Files of a DataTransfer (drop), walking dropped folders. Returns {files, folders}. */
export async function filesFromDrop(dataTransfer) {
  const items = [...(dataTransfer.items || [])];
  const entries = items
    .filter((it) => it.kind === 'file')
    .map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
  if (!entries.length || entries.some((e) => !e)) {
    return { files: [...(dataTransfer.files || [])], folders: 0 };
  }
  const files = [];
  let folders = 0;
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      files.push(prefix ? new File([file], prefix + file.name, { type: file.type }) : file);
    } else if (entry.isDirectory) {
      folders += 1;
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, '');
  return { files, folders };
}

/** A file's display name: its path inside an opened folder, else its name. */
export function displayName(file) {
  return file.webkitRelativePath || file.name;
}
