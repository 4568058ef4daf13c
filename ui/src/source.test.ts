import { describe, expect, it } from "vitest";
import { maxImageSize, mustCheck, sourceGiven, sourceSpec, sourceTitle } from "./source";
import { createStore, emptyForm } from "./store";

describe("the chosen source", () => {
  it("is given once its one required field is", () => {
    expect(sourceGiven(emptyForm)).toBe(false);
    expect(sourceGiven({ ...emptyForm, filePath: " /x.raw " })).toBe(true);
    expect(sourceGiven({ ...emptyForm, kind: "incus" })).toBe(true);
    expect(sourceGiven({ ...emptyForm, kind: "talos" })).toBe(false);
  });
  it("must be checked first when the engine says it does not stream, for a machine config, or by the setting", () => {
    expect(mustCheck({ ...emptyForm, kind: "url" }, false, true)).toBe(false);
    expect(mustCheck({ ...emptyForm, kind: "url" }, true, true)).toBe(true);
    expect(mustCheck({ ...emptyForm, kind: "talosBuild" }, false, false)).toBe(true);
    expect(mustCheck({ ...emptyForm, kind: "talos", cfgUserData: "/cp.yaml" }, false, true)).toBe(true);
  });
  it("is named by its file or what it is", () => {
    expect(sourceTitle({ ...emptyForm, kind: "url", url: "https://h.example/a/talos.raw.xz?x=1" })).toEqual({
      name: "talos.raw.xz",
      from: "h.example",
    });
    expect(sourceTitle({ ...emptyForm, kind: "talos", talosVersion: "v1.12.4" }).name).toBe(
      "Talos v1.12.4 nocloud-amd64.raw.xz",
    );
  });
  it("becomes the command's argument, a schematic replacing extensions", () => {
    const spec = sourceSpec({ ...emptyForm, kind: "talos", talosVersion: "v1.12.4", extensions: ["siderolabs/x"], schematic: "abc" });
    expect(spec).toMatchObject({ kind: "talos", extensions: [], schematic: "abc", version: "v1.12.4" });
    expect(sourceSpec({ ...emptyForm, filePath: "/x", typedDigest: " " })).toEqual({ kind: "file", path: "/x", sha256: null });
  });
  it("sends the factory's download token only when one is typed", () => {
    const talos = { ...emptyForm, kind: "talos" as const, talosVersion: "v1.13.0" };
    expect(sourceSpec({ ...talos, factoryToken: " tok " })).toMatchObject({ factoryToken: "tok" });
    expect(sourceSpec(talos)).toMatchObject({ factoryToken: null });
  });
  it("sends a board overlay for arm64 only", () => {
    const board = { ...emptyForm, kind: "talos" as const, talosVersion: "v1.13.0", overlay: "rpi_generic" };
    expect(sourceSpec({ ...board, arch: "arm64" })).toMatchObject({ overlay: "rpi_generic" });
    expect(sourceSpec({ ...board, arch: "amd64" })).toMatchObject({ overlay: null });
  });
  it("refuses a size limit that is not a positive number", () => {
    expect(maxImageSize("4")).toBe(4 * 2 ** 30);
    expect(() => maxImageSize("-1")).toThrow("above 0");
  });
});

describe("the store", () => {
  it("renders the updates of one event once, with the latest state", () => {
    const queued: (() => void)[] = [];
    const store = createStore({ n: 0 }, (f) => queued.push(f));
    const seen: number[] = [];
    store.subscribe(() => seen.push(store.get().n));
    store.set({ n: 1 });
    store.set((s) => ({ n: s.n + 1 }));
    expect(queued.length).toBe(1);
    queued.shift()!();
    expect(seen).toEqual([2]);
    store.set({ n: 3 });
    queued.shift()!();
    expect(seen).toEqual([2, 3]);
  });
});
