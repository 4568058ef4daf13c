#!/usr/bin/env python3
"""Serves a folder on 127.0.0.1 for tests/bench/stream.sh, at full speed or throttled.

usage: serve.py DIR PORT [BYTES_PER_SECOND]
"""
import functools
import http.server
import shutil
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    rate = 0

    def copyfile(self, source, outputfile):
        if not self.rate:
            shutil.copyfileobj(source, outputfile, 1 << 20)
            return
        # Paced in small slices so the link looks like a steady 25 MB/s, not bursts.
        start, sent = time.monotonic(), 0
        while chunk := source.read(64 << 10):
            outputfile.write(chunk)
            sent += len(chunk)
            ahead = sent / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def log_message(self, *args):
        pass


def main():
    folder, port = sys.argv[1], int(sys.argv[2])
    Handler.rate = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    handler = functools.partial(Handler, directory=folder)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


if __name__ == "__main__":
    main()
