// The models the page offers (www/models.json): which one a project uses,
// and where its weights, sample images and history samples are.

/** The catalog's file, next to index.html. */
export const CATALOG_URL = 'models.json';

/** The model of projects made before the page offered a choice. */
export const EARLIER_MODEL = 'digits';

/**
 * Checks a parsed models.json: `{default, models: [{id, name, about,
 * weights, samples, history, freezableBackbone}]}` (`about` and
 * `freezableBackbone`, whether training may leave the backbone alone, are
 * optional; the training defaults are the wasm module's); returns it, or
 * throws a sentence naming the fault.
 */
export function checkCatalog(catalog) {
  const models = catalog && catalog.models;
  if (!Array.isArray(models) || !models.length) throw new Error(`${CATALOG_URL} lists no models`);
  for (const [k, m] of models.entries()) {
    for (const field of ['id', 'name', 'weights', 'samples', 'history']) {
      if (typeof (m && m[field]) !== 'string' || !m[field]) {
        throw new Error(`${CATALOG_URL}: model ${k + 1} has no \`${field}\``);
      }
    }
  }
  if (!models.some((m) => m.id === catalog.default)) {
    throw new Error(`${CATALOG_URL}: the default model “${catalog.default}” is not among its models`);
  }
  return catalog;
}

/**
 * The model a session runs: the one a project was made with (`recorded`),
 * else the one the address asks for (`requested`, `?model=`), else the
 * catalog's default. An unknown recorded or requested model is an error
 * that names the ones there are.
 */
export function pickModel(catalog, { recorded = null, requested = null } = {}) {
  const wanted = recorded || requested || catalog.default;
  const found = catalog.models.find((m) => m.id === wanted);
  if (!found) {
    const known = catalog.models.map((m) => m.id).join(', ');
    const whose = recorded ? 'This project was made with' : 'The address asks for';
    throw new Error(`${whose} the model “${wanted}”, which this page does not have (it has ${known})`);
  }
  return found;
}
