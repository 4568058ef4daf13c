import { describe, expect, it } from "vitest";
import type { Drive } from "./api";
import {
  Meter,
  progressLine,
  resultLine,
  checkDigest,
  confirmationText,
  describeDrive,
  describeSource,
  formatBytes,
  flashBlocker,
  formatDuration,
  sentence,
} from "./logic";

const HEX = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

const drive = (over: Partial<Drive> = {}): Drive => ({
  path: "/dev/sdb",
  model: "Ultra",
  vendor: "SanDisk",
  serial: "",
  size: 30_752_000_000,
  bus: "usb",
  removable: true,
  readOnly: false,
  system: false,
  mountpoints: [],
  identity: { devnum: "8:16", diskseq: 12, serial: "4C53", size: 30_752_000_000 },
  ...over,
});

describe("digests", () => {
  it("match whatever the case and spacing", () => {
    expect(checkDigest(` ${HEX.toUpperCase()} `, HEX)).toBe("match");
  });
  it("say mismatch, invalid or nothing", () => {
    expect(checkDigest("0".repeat(64), HEX)).toBe("mismatch");
    expect(checkDigest("abc", HEX)).toBe("invalid");
    expect(checkDigest("   ", HEX)).toBe("empty");
  });
  it("warn when nothing vouches for the image", () => {
    expect(describeSource("unverified").warn).toBe(true);
    expect(describeSource("sidecar")).toEqual({ text: "the publisher's .sha256 file", warn: false });
    expect(describeSource("index", "CN=Incus OS - Update E1, O=Linux Containers").text).toBe(
      "the publisher's index, signed by CN=Incus OS - Update E1, O=Linux Containers",
    );
    expect(describeSource("signature", "the factory key sha256:ab12")).toEqual({
      text: "the factory's signature, signed by the factory key sha256:ab12",
      warn: false,
    });
    expect(describeSource("sha512").text).toBe("the publisher's .sha512 file");
  });
});

describe("formatting", () => {
  it("uses the units on drive labels", () => {
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(30_752_000_000)).toBe("30.8 GB");
  });
  it("says how long is left", () => {
    expect(formatDuration(42)).toBe("42 s");
    expect(formatDuration(125)).toBe("2 min 5 s");
    expect(formatDuration(NaN)).toBe("");
  });
});

describe("the meter", () => {
  it("measures rate and time left per stage", () => {
    const m = new Meter();
    m.update({ stage: "write", done: 0, total: 1000 }, 0);
    const r = m.update({ stage: "write", done: 500, total: 1000 }, 1000);
    expect(r.percent).toBe(50);
    expect(r.rate).toBe(500);
    expect(r.eta).toBe(1);
    const back = m.update({ stage: "readBack", done: 0, total: 1000 }, 2000);
    expect(back.percent).toBe(0);
    expect(back.rate).toBe(0);
  });

  it("ends a drive's row with what it already held", () => {
    const report = { path: "/dev/sdb", ok: true, bytesWritten: 1_000_000, bytesSkipped: 4_200_000, error: null, access: null };
    const sha = "ab".repeat(32);
    expect(resultLine({ ...report, verifiedSHA256: sha }).text).toMatch(/^✓ Verified — read back matches .* · 4\.2 MB were already on it$/);
    expect(resultLine({ ...report, bytesSkipped: 0, verifiedSHA256: sha }).text).not.toContain("already");
  });

  it("says what the drive already held", () => {
    const m = new Meter();
    m.update({ stage: "write", done: 0, total: 8_000_000 }, 0);
    const line = progressLine(m, { stage: "write", done: 4_000_000, total: 8_000_000, skipped: 3_000_000 }, 1000);
    expect(line.text).toBe("Writing · 50 % · 4.0 MB/s · 3.0 MB already on the drive · 1 s left");
  });
});

describe("flashing", () => {
  it("needs a prepared image, confirmed digests and a drive", () => {
    const ready = { prepared: true, confirmed: true, streams: false, mustCheck: false, selected: 1, busy: false };
    expect(flashBlocker(ready)).toBeNull();
    expect(flashBlocker({ ...ready, confirmed: false })).not.toBeNull();
    expect(flashBlocker({ ...ready, selected: 0 })).not.toBeNull();
    expect(flashBlocker({ ...ready, busy: true })).not.toBeNull();
  });
  it("names each drive and warns of unmounting", () => {
    const text = confirmationText([`Image: /home/me/talos.raw (${HEX})`], [drive(), drive({ path: "/dev/sdc", mountpoints: ["/media/x"] })]);
    expect(text).toContain(`Image: /home/me/talos.raw (${HEX})`);
    expect(text).toContain("SanDisk Ultra — 30.8 GB, usb — /dev/sdb (serial 4C53, device 8:16, disk sequence 12)");
    expect(text).toContain("/dev/sdc");
    expect(text).toContain("Mounted partitions will be unmounted first.");
  });
});

describe("sentence", () => {
  it("starts with a capital, ends with a period and drops OS error numbers", () => {
    expect(sentence("cannot read the image /x.raw: No such file or directory (os error 2)")).toBe(
      "Cannot read the image /x.raw: No such file or directory.",
    );
    expect(sentence("the drive changed since you chose it.")).toBe("The drive changed since you chose it.");
    expect(sentence("")).toBe("");
  });
});

describe("describeDrive", () => {
  it("names drives by what a person knows", () => {
    expect(describeDrive(drive())).toBe("SanDisk Ultra — 30.8 GB, usb — /dev/sdb");
    expect(describeDrive(drive({ vendor: "0x1af4", model: "", bus: "virtual", path: "/dev/vda" }))).toBe(
      "Virtual disk — 30.8 GB, virtual — /dev/vda",
    );
    expect(describeDrive(drive({ vendor: "", model: "", bus: "loop", path: "/dev/loop1" }))).toContain("Loop device");
  });
});

describe("flashBlocker", () => {
  const ready = { prepared: false, confirmed: false, streams: true, mustCheck: false, selected: 1, busy: false };
  it("says the one thing still missing", () => {
    expect(flashBlocker(ready)).toBeNull();
    expect(flashBlocker({ ...ready, streams: false })).toBe("Choose an image.");
    expect(flashBlocker({ ...ready, streams: false, mustCheck: true })).toContain("Check the image first");
    expect(flashBlocker({ ...ready, prepared: true })).toContain("I compared these digests");
    expect(flashBlocker({ ...ready, selected: 0 })).toBe("Choose a drive.");
    expect(flashBlocker({ ...ready, busy: true })).toContain("Busy");
  });
  it("needs a config stick and a boot stick for two sticks", () => {
    expect(flashBlocker({ ...ready, selected: 2, twoSticks: { configDrive: false } })).toContain("gets the config");
    expect(flashBlocker({ ...ready, selected: 1, twoSticks: { configDrive: true } })).toContain("second drive");
    expect(flashBlocker({ ...ready, selected: 2, twoSticks: { configDrive: true } })).toBeNull();
  });
});
