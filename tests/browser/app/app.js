// Helpers the driver calls on the app page. Each resolves with what a
// script on the page can observe, never with anything the browser hides.

/** Adds an <img> (with a caption) and resolves once it loaded or failed. */
window.loadImg = (src, caption) =>
  new Promise((resolve) => {
    const figure = document.createElement('figure');
    const img = document.createElement('img');
    img.onload = () => resolve({ event: 'load', naturalWidth: img.naturalWidth });
    img.onerror = () => resolve({ event: 'error', naturalWidth: img.naturalWidth });
    img.src = src;
    figure.append(img);
    if (caption) {
      const text = document.createElement('figcaption');
      text.textContent = caption;
      figure.append(text);
    }
    document.getElementById('stage').append(figure);
  });

/** Adds a muted <video> with a caption; returns the element. */
window.addVideo = (caption) => {
  const figure = document.createElement('figure');
  const video = document.createElement('video');
  video.muted = true;
  video.controls = true;
  video.width = 160;
  const text = document.createElement('figcaption');
  text.textContent = caption;
  figure.append(video, text);
  document.getElementById('stage').append(figure);
  return video;
};
