// Upload one file with the stock tus-js-client (Node), as a browser app would.
// Usage: node upload.mjs <endpoint> <bearer token> <file> <chunk bytes> <metadata JSON>
// Prints {"url": ..., "seconds": ...} on success; exits 1 with the error on failure.
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [endpoint, token, file, chunk, metadata] = process.argv.slice(2);
const size = fs.statSync(file).size;
const started = process.hrtime.bigint();
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: Number(chunk),
  metadata: JSON.parse(metadata),
  headers: { Authorization: `Bearer ${token}` },
  retryDelays: [0, 500, 1000, 2000],
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess() {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(JSON.stringify({ url: upload.url, seconds }));
  },
});
upload.start();
