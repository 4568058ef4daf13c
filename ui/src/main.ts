// The app's screens arrive with the desktop-app issue; until then the window states what labflash is.
export {};
const statusLine = document.getElementById("status");
if (statusLine) {
  statusLine.dataset.ready = "true";
}
