// The connection to /api/v1/live: reconnects by itself with backoff (the api may restart),
// and treats a silent socket as a dead one (the api pings every ~15 s).

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;
const SILENCE_MS = 45000;

export function connectLive(url, { onMessage, onState }) {
  let attempt = 0;
  let socket = null;
  let watchdog = null;

  function feed() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => socket && socket.close(), SILENCE_MS);
  }

  function retry() {
    clearTimeout(watchdog);
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** attempt);
    attempt += 1;
    // Jitter, so a room of kiosks does not knock on the restarted api all at once.
    setTimeout(open, delay * (0.75 + Math.random() * 0.5));
  }

  function open() {
    onState(attempt === 0 ? "connecting" : "lost");
    try {
      socket = new WebSocket(url);
    } catch {
      retry();
      return;
    }
    socket.onopen = feed;
    socket.onmessage = (event) => {
      feed();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;  // not ours to show
      }
      if (msg.type === "snapshot") {
        attempt = 0;
        onState("live");
      }
      onMessage(msg);
    };
    socket.onclose = () => {
      socket = null;
      onState("lost");
      retry();
    };
  }

  open();
}

// fetch JSON, retrying with the same backoff until it comes
export async function fetchJson(url) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(url, { cache: "no-cache" });
      if (response.ok) return await response.json();
    } catch {
      // the api is not up yet: wait and try again
    }
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** attempt);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
