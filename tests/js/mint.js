// Mints a JWT the way Node backends do, with the `jsonwebtoken` package.
// Usage: node mint.js <alg> <key-file> <json-claims> [<json-options>]
// Prints the token. Test-only.
'use strict';
const fs = require('fs');
const jwt = require('jsonwebtoken');

const [alg, keyFile, claims, options] = process.argv.slice(2);
const key = fs.readFileSync(keyFile);
const opts = Object.assign({ algorithm: alg }, options ? JSON.parse(options) : {});
process.stdout.write(jwt.sign(JSON.parse(claims), key, opts));
