#!/usr/bin/env python3
"""Runs a command and prints the seconds from its start to the first change of the 4 KiB at
OFFSET of FILE, read every 5 ms: the tmpfs file backing the loop device the command writes (the
device itself cannot be watched: labflash refuses a drive another program holds open).

usage: first_byte.py FILE OFFSET COMMAND...
"""
import os
import subprocess
import sys
import time

backing, offset, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
fd = os.open(backing, os.O_RDONLY)


def held():
    return os.pread(fd, 4096, offset)


before = held()
start = time.monotonic()
proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
first = None
while first is None and proc.poll() is None:
    if held() != before:
        first = time.monotonic() - start
    time.sleep(0.005)
if proc.wait() != 0:
    sys.exit(f"first_byte.py: {command[0]} exited with {proc.returncode}")
if first is None:
    sys.exit("first_byte.py: the command ended before a change was seen")
print(f"{first:.2f}")
