import { describe, expect, it } from "vitest";
import type { Drive, Summary, TargetReport } from "./api";
import type { DriveRun, Run } from "./store";
import {
  Meter,
  progressLine,
  resultLine,
  checkDigest,
  confirmSummary,
  describeDrive,
  heldText,
  nextSteps,
  runOutcome,
  sameDrive,
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

  it("says no rate in the first second, then the rate of the last few seconds", () => {
    const m = new Meter();
    m.update({ stage: "write", done: 0, total: 100_000_000 }, 0);
    // A burst into the stick's cache: no "3 GB/s · 0 s left".
    expect(m.update({ stage: "write", done: 30_000_000, total: 100_000_000 }, 100).rate).toBe(0);
    for (let t = 1000; t <= 10_000; t += 1000) m.update({ stage: "write", done: 30_000_000 + t * 1000, total: 100_000_000 }, t);
    // 1 MB/s since the burst, over the last three seconds; the burst is forgotten.
    const now = m.update({ stage: "write", done: 41_000_000, total: 100_000_000 }, 11_000);
    expect(now.rate).toBeCloseTo(1_000_000, -3);
    expect(now.eta).toBeCloseTo(59, 0);
  });

  it("ends a drive's row with what it already held", () => {
    const report = { path: "/dev/sdb", ok: true, bytesWritten: 1_000_000, bytesSkipped: 4_200_000, error: null, access: null };
    const sha = "ab".repeat(32);
    expect(resultLine({ ...report, verifiedSHA256: sha }).text).toMatch(/^✓ Verified — read back matches .* · 4\.2 MB already matched \(not rewritten\)$/);
    expect(resultLine({ ...report, bytesSkipped: 0, verifiedSHA256: sha }).text).not.toContain("matched");
  });

  it("says what the drive already held", () => {
    const m = new Meter();
    m.update({ stage: "write", done: 0, total: 8_000_000 }, 0);
    const line = progressLine(m, { stage: "write", done: 4_000_000, total: 8_000_000, skipped: 3_000_000 }, 1000);
    expect(line.text).toBe("Writing · 50 % · 4.0 MB/s · 3.0 MB already matched (not rewritten) · 1 s left");
  });
});

describe("flashing", () => {
  it("needs a prepared image, its digests compared when nothing vouches for it, and a drive", () => {
    const ready = { prepared: true, confirmed: true, mustCompare: true, pastedMismatch: false, checkFailed: false, streams: false, mustCheck: false, selected: 1, busy: false };
    expect(flashBlocker(ready)).toBeNull();
    expect(flashBlocker({ ...ready, confirmed: false })).toContain("I compared these digests");
    // The publisher's checksum matched: nothing to tick.
    expect(flashBlocker({ ...ready, confirmed: false, mustCompare: false })).toBeNull();
    expect(flashBlocker({ ...ready, mustCompare: false, pastedMismatch: true })).toContain("none of those shown");
    expect(flashBlocker({ ...ready, selected: 0 })).not.toBeNull();
    expect(flashBlocker({ ...ready, busy: true })).not.toBeNull();
  });
  it("says in plain words what is written, who vouches for it and what else goes on the stick", () => {
    const plan: Summary = { name: "metal-amd64.raw.xz", size: 201_326_592, sizeExact: true, digestSource: "sidecar", signedBy: null, configPartitionSHA256: null, configSticks: [] };
    const text = (p: Summary, drives = [drive()], lab: number | null = null) => confirmSummary(p, drives, lab).map((l) => l.text).join("\n");
    expect(text(plan)).toContain("Write metal-amd64.raw.xz (201.3 MB) onto this drive.");
    expect(text(plan)).toContain("It must match the publisher's .sha256 file");
    expect(text(plan)).not.toMatch(/[0-9a-f]{64}/);
    expect(text({ ...plan, size: null })).toContain("its size is known once it is decoded");
    expect(text({ ...plan, sizeExact: false })).toContain("at least 201.3 MB");
    const unverified = confirmSummary({ ...plan, digestSource: "unverified" }, [drive()], null);
    expect(unverified.find((l) => l.tone === "warn")?.text).toContain("Nothing its publisher published vouches");
    expect(text({ ...plan, configPartitionSHA256: HEX })).toContain("partition named cidata (SHA-256 37656798…d603b4ba)");
    expect(text({ ...plan, configSticks: ["/dev/sdc"] })).toContain("The config image goes onto /dev/sdc, a stick of its own.");
    expect(text(plan, [drive(), drive({ path: "/dev/sdc", mountpoints: ["/media/x"] })])).toContain(
      "Everything on them will be erased; mounted partitions are unmounted first.",
    );
    expect(text(plan, [drive(), drive()], 2)).toContain("one per node of the lab's 2");
  });
  it("names the drive as the one chosen, by serial or else by device number", () => {
    expect(sameDrive(drive())).toBe("the same drive you chose: serial 4C53");
    expect(sameDrive(drive({ identity: { devnum: "7:0", diskseq: 25, serial: null, size: 1 } }))).toBe(
      "the same drive you chose: no serial, so checked by device 7:0 and disk sequence 25",
    );
  });
});

describe("after a flash", () => {
  const report = (over: Partial<TargetReport> = {}): TargetReport => ({
    path: "/dev/sdb",
    ok: true,
    bytesWritten: 1,
    bytesSkipped: 0,
    verifiedSHA256: HEX,
    error: null,
    access: "direct",
    ...over,
  });
  const row = (r?: TargetReport, text = "x"): DriveRun => ({
    drive: drive({ path: r?.path ?? "/dev/sdb" }),
    config: false,
    line: r ? resultLine(r) : { text, percent: null, outcome: "bad" },
    report: r,
  });
  const run = (drives: DriveRun[], failure?: Run["failure"]): Run => ({ phase: "done", image: "", plan: null, drives, result: null, askCancel: false, failure });
  const failed = report({ path: "/dev/sdc", ok: false, verifiedSHA256: null, error: "i/o error", errorKind: "failure" });

  it("says what a drive that did not take the image holds", () => {
    expect(heldText(row(report()))).toBeNull();
    expect(heldText(row(failed))).toBe("Left blank: not bootable.");
    expect(heldText(row(report({ ok: false, access: null, error: "busy", errorKind: "failure" })))).toBe("Left as it was: nothing was written to it.");
    expect(heldText(row(undefined, "Failed"), "badInput")).toBe("Left as it was: nothing was written to it.");
    expect(heldText(row(undefined, "Failed"), "digestMismatch")).toBe("Left blank: not bootable.");
  });
  it("offers Retry for a drive that failed and another image when the image was refused", () => {
    expect(nextSteps(run([row(report())]), false)).toEqual({ retry: 0, another: true, otherImage: false });
    expect(nextSteps(run([row(report()), row(failed)]), false)).toEqual({ retry: 1, another: true, otherImage: false });
    expect(nextSteps(run([row(failed)]), false)).toEqual({ retry: 1, another: false, otherImage: false });
    expect(nextSteps(run([row(undefined, "Failed")], "digestMismatch"), false)).toEqual({ retry: 0, another: false, otherImage: true });
    expect(nextSteps(run([row(failed)]), true).retry).toBe(0);
    // Too small: another try would fail the same way; another drive is offered instead.
    const small = report({ ok: false, verifiedSHA256: null, error: "the image does not fit", errorKind: "badInput" });
    expect(nextSteps(run([row(small)]), false)).toEqual({ retry: 0, another: true, otherImage: false });
  });
  it("sums the run up", () => {
    expect(runOutcome(run([row(report()), row(report({ path: "/dev/sdc" }))]))).toBe("Done — 2 drives verified");
    expect(runOutcome(run([row(report()), row(failed)]))).toBe("1 drive done, 1 failed of 2");
    expect(runOutcome(run([row(report()), row(report({ path: "/dev/sdc", ok: false, errorKind: "cancelled" }))]))).toBe("1 drive done, 1 cancelled of 2");
    expect(runOutcome(run([row(undefined, "Failed")], "digestMismatch"))).toContain("not the one its publisher published");
  });
});

describe("a silent server", () => {
  it("is said as waiting, with its seconds, not as a frozen speed", () => {
    const m = new Meter();
    progressLine(m, { stage: "download", done: 1_000_000, total: 4_000_000 }, 0);
    const line = progressLine(m, { stage: "download", done: 1_000_000, total: 4_000_000, waiting: 5 }, 5000);
    expect(line.text).toBe("Waiting for the server (5 s)");
    expect(line.percent).toBe(25);
  });
});

describe("sentence", () => {
  it("starts with a capital, ends with a period and drops OS error numbers", () => {
    expect(sentence("cannot read the image /x.raw: No such file or directory (os error 2)")).toBe(
      "Cannot read the image /x.raw: No such file or directory.",
    );
    expect(sentence("the drive changed since you chose it.")).toBe("The drive changed since you chose it.");
    expect(sentence("")).toBe("");
    expect(sentence("http://127.0.0.1:9/x.raw.xz answered 404 Not Found")).toBe("http://127.0.0.1:9/x.raw.xz answered 404 Not Found.");
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
  const ready = { prepared: false, confirmed: false, mustCompare: true, pastedMismatch: false, checkFailed: false, streams: true, mustCheck: false, selected: 1, busy: false };
  it("says the one thing still missing", () => {
    expect(flashBlocker(ready)).toBeNull();
    expect(flashBlocker({ ...ready, streams: false })).toBe("Choose an image.");
    expect(flashBlocker({ ...ready, streams: false, mustCheck: true })).toBe("Wait for the image to be checked.");
    expect(flashBlocker({ ...ready, streams: false, mustCheck: true, checkFailed: true })).toContain("see why under Image");
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
