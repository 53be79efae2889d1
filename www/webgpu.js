// WebGPU adjustments that must happen before the wasm module asks for a device
// (in the engine's worker, and on the benchmark page).
//
// burn's WebGPU kernels (cubecl) use WGSL subgroup operations (`enable
// subgroups;`) in some matrix kernels whenever it runs them, but wgpu's browser
// backend never asks the adapter for the `subgroups` feature, so Chrome refuses
// those shaders and the device is lost on the first prediction. Asking for the
// feature whenever the adapter offers it makes those shaders valid.

const lostListeners = [];

/** Calls `listener(info)` (a GPUDeviceLostInfo) when a device veritune asked for is lost. */
export function onDeviceLost(listener) {
  lostListeners.push(listener);
}

/**
 * Adds `subgroups` to every device request on adapters that support it, and
 * watches every device it gives for loss (a driver reset, an unplugged GPU).
 */
export function requestSubgroups() {
  const proto = globalThis.GPUAdapter?.prototype;
  if (!proto || proto.requestDevice.veritune) return;
  const original = proto.requestDevice;
  const patched = async function (descriptor = {}) {
    const features = new Set(descriptor.requiredFeatures || []);
    if (this.features.has('subgroups')) features.add('subgroups');
    const device = await original.call(this, { ...descriptor, requiredFeatures: [...features] });
    device.lost.then((info) => lostListeners.forEach((listener) => listener(info)));
    return device;
  };
  patched.veritune = true;
  proto.requestDevice = patched;
}

/** Whether WebGPU can run veritune's kernels here: the adapter must offer subgroups. */
export async function webgpuProblem() {
  if (!globalThis.navigator?.gpu) return 'this browser has no WebGPU (navigator.gpu is missing)';
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return 'the browser offers no WebGPU adapter';
  if (!adapter.features.has('subgroups')) return 'the WebGPU adapter lacks the subgroups feature that the kernels need';
  return '';
}
