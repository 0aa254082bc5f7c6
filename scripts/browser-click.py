#!/usr/bin/env python3
"""Clicks an element of a page in headless Chromium the way a person does, and prints the page after.

    scripts/browser-click.py URL ELEMENT_ID [--user USER:PASSWORD] [--wait-text TEXT] [--timeout SECONDS]

Chromium is driven over its DevTools protocol (a websocket; written here with the standard library
only): the page is loaded, the element's box is measured, and a mouse press and release are sent at
its centre (Input.dispatchMouseEvent: the same events a real click makes, so a <button> in a <form>
submits it with the page's own fields). Then it waits until the page has navigated and finished
loading (and, with --wait-text, until the page's text contains TEXT) and prints the final URL on the
first line and the page's HTML after it. Exit 1 when the element is missing or nothing happened.
"""
import base64, json, os, re, socket, struct, subprocess, sys, tempfile, time, urllib.request


class WebSocket:
    """The client side of RFC 6455, enough for DevTools: text frames, masked, no extensions."""

    def __init__(self, url):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (m.group(3), m.group(1), m.group(2), key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("websocket handshake refused: %r" % head[:200])
        self.buffer = b""

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def receive(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise RuntimeError("websocket closed by the browser")
            if opcode in (0x9, 0xA):
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def main():
    args = sys.argv[1:]
    options = {"--user": None, "--wait-text": None, "--timeout": "30"}
    positional = []
    while args:
        a = args.pop(0)
        if a in options:
            options[a] = args.pop(0)
        else:
            positional.append(a)
    if len(positional) != 2:
        sys.exit(__doc__)
    url, element = positional
    timeout = float(options["--timeout"])
    profile = tempfile.mkdtemp(prefix="slipway-chromium-")
    chromium = subprocess.Popen(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", "--user-data-dir=" + profile,
         "--window-size=1280,900", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            line = chromium.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            sys.exit("chromium did not open its DevTools port")
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port))
        page = Page(WebSocket(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]))
        page.call("Page.enable")
        page.call("Network.enable")
        if options["--user"]:
            token = base64.b64encode(options["--user"].encode()).decode()
            page.call("Network.setExtraHTTPHeaders", headers={"Authorization": "Basic " + token})
        page.call("Page.navigate", url=url)

        def wait_until(condition, what):
            end = time.time() + timeout
            while time.time() < end:
                if condition():
                    return
                time.sleep(0.1)
            sys.exit("timed out waiting for %s (page at %s)" % (what, page.evaluate("location.href")))

        wait_until(lambda: page.evaluate("document.readyState") == "complete" and page.evaluate("location.href") == url, "the page to load")
        box = page.evaluate("""(() => { const e = document.getElementById(%s); if (!e) return null;
            e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();
            return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()""" % json.dumps(element))
        if box is None:
            sys.exit("no element with id %r on %s" % (element, url))
        page.evaluate("window.slipwayBeforeClick = true")  # gone once a new document has loaded
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            page.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left" if kind != "mouseMoved" else "none",
                      clickCount=1 if kind != "mouseMoved" else 0)

        def quietly(expression):
            try:
                return page.evaluate(expression)
            except RuntimeError:
                return None  # between documents

        wait_until(lambda: quietly("window.slipwayBeforeClick === undefined && document.readyState === 'complete'") is True,
                   "a new page after the click")
        if options["--wait-text"]:
            wait_until(lambda: options["--wait-text"] in (quietly("document.body.innerText") or ""), repr(options["--wait-text"]))
        print(page.evaluate("location.href"))
        print(page.evaluate("document.documentElement.outerHTML"))
    finally:
        chromium.kill()
        chromium.wait()
        subprocess.run(["rm", "-rf", profile])


if __name__ == "__main__":
    main()
