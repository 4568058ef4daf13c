import { afterEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { api, errorMessage, wasCancelled } from "./api";

afterEach(() => clearMocks());

describe("the command layer", () => {
  it("calls the app's commands with camelCase arguments", async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "list_drives") return [];
      if (cmd === "cancel") return true;
    });
    await api.listDrives(true, 1234, "/home/me/talos.raw");
    expect(await api.cancel(7)).toBe(true);
    expect(calls).toEqual([
      ["list_drives", { showAll: true, imageSize: 1234, source: "/home/me/talos.raw" }],
      ["cancel", { job: 7 }],
    ]);
  });

  it("turns command errors into one sentence", async () => {
    mockIPC(() => {
      throw { message: "refusing to write to /dev/sda: it is a system drive (it holds /)", kind: "badInput" };
    });
    const failure = await api.cacheInfo().catch((e) => errorMessage(e));
    expect(failure).toBe("refusing to write to /dev/sda: it is a system drive (it holds /)");
  });
});

describe("wasCancelled", () => {
  it("reads the error's typed kind, not its words", () => {
    expect(wasCancelled({ message: "cancelled", kind: "cancelled" })).toBe(true);
    expect(wasCancelled({ message: "cancelled", kind: "failure" })).toBe(false);
    expect(wasCancelled("cancelled")).toBe(false);
  });
});
