// Signs CDN credentials with the npm packages Node backends use (test-only).
// Usage: node cdn.js cloudfront-url    <json: getSignedUrl input, privateKey as a file path>
//        node cdn.js cloudfront-cookies <json: getSignedCookies input, privateKey as a file path>
//        node cdn.js edgeauth <json: EdgeAuth options plus "acl" or "url">
// Prints the URL, the cookies as JSON, or the token.
'use strict';
const fs = require('fs');

const [command, input] = process.argv.slice(2);
const opts = JSON.parse(input);
if (command === 'edgeauth') {
  const EdgeAuth = require('akamai-edgeauth');
  const { acl, url } = opts;
  delete opts.acl;
  delete opts.url;
  const ea = new EdgeAuth(opts);
  process.stdout.write(acl !== undefined ? ea.generateACLToken(acl) : ea.generateURLToken(url));
} else {
  const signer = require('@aws-sdk/cloudfront-signer');
  opts.privateKey = fs.readFileSync(opts.privateKey, 'utf8');
  if (command === 'cloudfront-url') {
    process.stdout.write(signer.getSignedUrl(opts));
  } else {
    process.stdout.write(JSON.stringify(signer.getSignedCookies(opts)));
  }
}
