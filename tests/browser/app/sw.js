// The service-worker pattern: the page hands its bearer token to the worker,
// and the worker adds `Authorization: Bearer` to the page's image requests
// to the files origin (given as ?files=<origin> at registration). Such a
// request is a CORS request with a non-safelisted header, so the files
// origin must answer its preflight.
const files = new URL(self.location.href).searchParams.get('files');
let token = null;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  token = event.data.token;
  event.ports[0].postMessage('ok');
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (!token || request.destination !== 'image' || new URL(request.url).origin !== files) {
    return;
  }
  event.respondWith(
    fetch(request.url, {
      headers: { Authorization: `Bearer ${token}` },
      mode: 'cors',
      credentials: 'omit',
    }),
  );
});
