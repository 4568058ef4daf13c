// Generated from the app's Rust types by src-tauri/src/bindings_tests.rs: do not edit.
// `src-tauri/scripts/bless-bindings.sh` rewrites it.

export type Sha256Digest = string;

export type Stage = "download" | "checkCache" | "decompress" | "checkImage" | "hashImage" | "write" | "readBack";

export type Progress = { stage: Stage, done: number, 
/**
 * Unknown when the server sends no length. Writing a stream: the image's size as its
 * archive records it exactly (xz, zstd), until the image outgrows it; unknown otherwise.
 */
total: number | null, 
/**
 * The drive or file a write or read-back report is about.
 */
target?: string, 
/**
 * Writing: of `done`, the bytes the target already held and were not written again.
 */
skipped?: number, 
/**
 * Downloading: seconds since the last byte came, said about once a second while the
 * server has been silent for 2 s or more (a stalled body, a wait before another attempt);
 * absent again once bytes come.
 */
waiting?: number, };

export type ErrorKind = "digestMismatch" | "badInput" | "cancelled" | "failure";

export type CommandError = { message: string, kind: ErrorKind, };

export type DigestSource = "sidecar" | "sha256sum" | "sha256sums" | "index" | "signature" | "sha512" | "flag" | "unverified";

export type AppInfo = { version: string, cacheDir: string, 
/**
 * The extra CA certificate file trusted beside the system's store, if one was chosen.
 */
caCert: string | null, 
/**
 * Where every flash's record is written, if Settings keep records.
 */
recordsDir: string | null, 
/**
 * The root IncusOS indexes are checked against instead of IncusOS's own, if one was chosen.
 */
incusRoot: string | null, };

export type Bus = "usb" | "mmc" | "nvme" | "sata" | "virtual" | "loop" | "other";

export type Partition = { path: string, mountpoints: Array<string>, holders: Array<string>, };

export type DriveIdentity = { 
/**
 * `major:minor` on Linux; on Windows the disk number N of `\\.\PhysicalDriveN`.
 */
devnum: string, 
/**
 * The kernel's sequence number for this disk's media (Linux 5.15+): a new stick, or a loop
 * device attached anew, gets a new one even under the same name and number. On Windows the
 * device's GUID (`IOCTL_STORAGE_GET_DEVICE_NUMBER_EX`) folded to 64 bits: another device
 * given the same disk number has another.
 */
diskseq: number | null, serial: string, size: number, };

export type Drive = { path: string, model: string, vendor: string, serial: string, size: number, logicalBlockSize: number, physicalBlockSize: number, removable: boolean, bus: Bus, readOnly: boolean, 
/**
 * Holds a mounted /, /boot, /boot/efi, /usr, /var, /home or active swap, directly or
 * through a holder (LVM, RAID, dm-crypt). Never a target.
 */
system: boolean, 
/**
 * Everything mounted from this drive: the disk, its partitions and their holders.
 */
mountpoints: Array<string>, partitions: Array<Partition>, 
/**
 * Devices stacked on the disk or its partitions (dm-0, md127, …).
 */
holders: Array<string>, 
/**
 * For loop devices: the file behind it.
 */
backingFile?: string, 
/**
 * What a flash checks the opened device against (see `identity`).
 */
identity: DriveIdentity, };

export type Unsuitable = { badge: string, reason: string, };

export type DriveRow = { 
/**
 * Why this drive cannot take the image (listed disabled), if it cannot.
 */
unsuitable: Unsuitable | null, fixed: boolean, path: string, model: string, vendor: string, serial: string, size: number, logicalBlockSize: number, physicalBlockSize: number, removable: boolean, bus: Bus, readOnly: boolean, 
/**
 * Holds a mounted /, /boot, /boot/efi, /usr, /var, /home or active swap, directly or
 * through a holder (LVM, RAID, dm-crypt). Never a target.
 */
system: boolean, 
/**
 * Everything mounted from this drive: the disk, its partitions and their holders.
 */
mountpoints: Array<string>, partitions: Array<Partition>, 
/**
 * Devices stacked on the disk or its partitions (dm-0, md127, …).
 */
holders: Array<string>, 
/**
 * For loop devices: the file behind it.
 */
backingFile?: string, 
/**
 * What a flash checks the opened device against (see `identity`).
 */
identity: DriveIdentity, };

export type DriveEvent = { "event": "added", drive: Drive, } | { "event": "removed", path: string, } | { "event": "changed", drive: Drive, };

export type Ejected = { "kind": "poweredOff" } | { "kind": "detached" } | { "kind": "kept", "why": string };

export type SourceSpec = { "kind": "url", url: string, sha256: string | null, allowUnverified: boolean, } | { "kind": "file", path: string, sha256: string | null, } | { "kind": "talos", factoryUrl: string, 
/**
 * An Enterprise factory's download token (sent as `?token=`, never shown).
 */
factoryToken: string | null, version: string, extensions: Array<string>, kernelArgs: Array<string>, 
/**
 * A board overlay by its official name (single-board computers).
 */
overlay: string | null, schematic: string | null, platform: string, arch: string, secureboot: boolean, format: string, sha256: string | null, allowUnverified: boolean, } | { "kind": "incus", indexUrl: string, baseUrl: string, channel: string, arch: string, 
/**
 * A folder of install seed files.
 */
seed: string | null, } | { "kind": "talosBuild", config: string, };

export type Cidata = { path: string, sha256: Sha256Digest, size: number, };

export type Prepared = { imagePath: string, imageSHA256: Sha256Digest, imageSize: number, archiveSHA256: Sha256Digest, digestSource: DigestSource, 
/**
 * Who signed the index the expected digest came from (`CN=…, O=…`), when it was signed.
 */
signedBy: string | null, 
/**
 * A labctl build's config image.
 */
config: Cidata | null, warnings: Array<string>, 
/**
 * Why a config beside this image must go on a stick of its own (its release does not read
 * cidata on its boot stick), if it must: the flash refuses the one-stick layout then.
 */
configOwnStick: string | null, };

export type Chosen = { path: string, identity: DriveIdentity | null, };

export type ImageSpec = { "kind": "source", source: SourceSpec, maxImageSize: number | null, } | { "kind": "prepared", job: number, };

export type ConfigSpec = { path: string, sha256: string, };

export type FlashSpec = { image: ImageSpec, 
/**
 * Drives as the list gave them: path and identity (a drive that changed is refused).
 */
targets: Array<Chosen>, unmount: boolean, allowFixed: boolean, verify: boolean, 
/**
 * A config image: a partition after the image's own on the one target, or, with
 * `config_to`, written whole onto that drive of its own.
 */
config: ConfigSpec | null, configTo: Chosen | null, };

export type ImageKind = "gpt" | "mbr" | "iso9660-hybrid" | "iso9660" | "fat" | "qcow2" | "vmdk" | "vhd" | "vhdx" | "pe-executable" | "squashfs" | "tar" | "zip" | "unknown";

export type Summary = { 
/**
 * The image's name: the last part of its URL or path.
 */
name: string, 
/**
 * Its size in bytes, when known before writing.
 */
size: number | null, 
/**
 * `false`: `size` is what the archive records as a lower bound.
 */
sizeExact: boolean, 
/**
 * Where the digest that vouches for it came from (`unverified`: nothing does).
 */
digestSource: DigestSource, 
/**
 * Who signed that digest, when it was signed.
 */
signedBy: string | null, 
/**
 * One stick: the config laid beside the boot image as its `cidata` partition.
 */
configPartitionSHA256: Sha256Digest | null, 
/**
 * Two sticks: the drives the config image goes onto, whole.
 */
configSticks: Array<string>, };

export type PlanView = { 
/**
 * The plan in the few facts a confirmation says in plain words.
 */
summary: Summary, 
/**
 * Every detail, in the engine's lines.
 */
lines: Array<string>, warnings: Array<string>, 
/**
 * What the image is (`gpt`, `iso9660-hybrid`, `unknown`, …), when known before writing; a
 * download's is known from its first decoded bytes, and is in the result (`Flashed`).
 */
imageKind: ImageKind | null, };

export type ImageSize = { bytes: number, 
/**
 * `false`: the image holds at least `bytes`.
 */
exact: boolean, };

export type ProbeView = { 
/**
 * Whether it is flashed straight from where it is (`Source::streams`, the engine's rule), or
 * must be checked first (`prepare`).
 */
streams: boolean, 
/**
 * The image's URL (without credentials), or its file's canonical path.
 */
source: string, 
/**
 * The release it is: the Talos version asked for, the newest IncusOS of the channel.
 */
version: string | null, 
/**
 * An Image Factory's schematic ID, created for the extensions asked for or given.
 */
schematic: string | null, 
/**
 * Bytes of the archive: the download as its server announces it (`Content-Length`; `null`
 * when it does not say), or the local file.
 */
archiveSize: number | null, 
/**
 * The SHA-256 the archive must have (`null`: a `.sha512` file vouches, or nothing does).
 */
expectedSHA256: Sha256Digest | null, 
/**
 * Where the expected digest comes from; a local file's given digest is checked when it is
 * flashed (it is not hashed here).
 */
digestSource: DigestSource, 
/**
 * Who signed the index or the asset the digest comes from, when it is signed.
 */
signedBy: string | null, 
/**
 * The image's size as its archive records it (`null`: known only when decoded).
 */
imageSize: ImageSize | null, 
/**
 * What the image is, when its first bytes are here (a local file); a download's is known
 * from its first decoded bytes, when it is flashed.
 */
imageKind: ImageKind | null, 
/**
 * The tar or zip entry the image is unwrapped from, when known with its kind.
 */
imageInside: { archive: "tar" | "zip", 
/**
 * The entry's name in the archive.
 */
name: string, } | null, 
/**
 * What a plan of it would warn about (a seed without an install file, an image without a
 * partition table, a signature that could not be checked).
 */
warnings: Array<string>, };

export type Access = "direct" | "udisks2" | "helper";

export type TargetReport = { path: string, ok: boolean, 
/**
 * Bytes of the image written to the target.
 */
bytesWritten: number, 
/**
 * Bytes of the image the target already held, left as they were (and read back like the
 * rest).
 */
bytesSkipped: number, 
/**
 * The digest read back from the target; null when not verified or failed.
 */
verifiedSHA256: Sha256Digest | null, error: string | null, 
/**
 * What sort of failure `error` is (a mismatch, bad input, cancelled, any other), for front
 * ends and exit codes; it crosses the helper's pipe with the report.
 */
errorKind?: ErrorKind, 
/**
 * How the target was reached; null when it was never opened.
 */
access: Access | null, };

export type Flashed = { imageSHA256: Sha256Digest, imageSize: number, 
/**
 * What the image is, from its decoded bytes: `gpt`, `mbr`, `iso9660-hybrid`, `fat`, or
 * `iso9660` and `unknown` (written with a warning); any other kind is refused before writing.
 */
imageKind: ImageKind, 
/**
 * The tar or zip entry the image was unwrapped from (`{"archive":"tar","name":"disk.raw"}`);
 * absent when the decoded archive is the image itself.
 */
imageInside?: { archive: "tar" | "zip", 
/**
 * The entry's name in the archive.
 */
name: string, }, 
/**
 * One stick: the config image's digest, where its partition starts, and the digest of the
 * whole laid-out stream the targets' read-back reproduces.
 */
configSHA256?: Sha256Digest, cidataOffset?: number, stickSHA256?: Sha256Digest, 
/**
 * The archive's (or source file's) verified digest and where the expected one came from.
 */
archiveSHA256: Sha256Digest, digestSource: DigestSource, targets: Array<TargetReport>, warnings?: Array<string>, 
/**
 * Two sticks: what the config stick got (absent when the boot stick failed or was
 * cancelled first).
 */
configStick?: Flashed, };

export type NodeFlashed = { node: string, 
/**
 * The node's result; absent when its flash failed as a whole (then `error` says why).
 */
flashed?: Flashed, error?: string, };

export type LabView = { source: string, nodes: Array<LabNodeView>, 
/**
 * Why each node's config must go on a stick of its own (the image's release does not read
 * cidata on its boot stick), if it must: each row then takes a second drive.
 */
configOwnStick: string | null, };

export type LabNodeView = { hostname: string, 
/**
 * Its config image, built from its machine config, hostname and network config.
 */
config: Cidata, };

export type LabSpec = { lab: number, drives: Array<Chosen>, 
/**
 * Two sticks: each node's config stick, in the nodes' order (none: configs as partitions).
 */
configDrives: Array<Chosen> | null, unmount: boolean, allowFixed: boolean, verify: boolean, };

export type LabRun = { nodes: Array<NodeFlashed>, record: string | null, recordError: string | null, };

export type FlashRun = { flashed: Flashed, record: string | null, recordError: string | null, };

export type ExpectedSpec = { "kind": "digest", sha256: string, } | { "kind": "image", path: string, } | { "kind": "sidecar", location: string, };

export type Verification = { path: string, size: number, sha256: Sha256Digest, expectedSHA256: Sha256Digest, 
/**
 * What vouches for the expected digest, for people.
 */
expectedFrom: string, 
/**
 * The compressed archive whose image was expected: its verified digest.
 */
archiveSHA256?: Sha256Digest, match: boolean, };

export type CacheInfo = { path: string, bytes: number, };

export type CidataSpec = { userData: string, hostname: string, instanceId: string | null, networkConfig: string | null, output: string, };

export type Version = { version: string, prerelease: boolean, };

export type Extension = { name: string, ref: string, digest: string, author: string, description: string, };

export type Overlay = { name: string, image: string, ref: string, digest: string, };
