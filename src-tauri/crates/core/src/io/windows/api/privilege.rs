//! The privileged helper on Windows: `labflash.exe helper` started elevated through
//! ShellExecuteEx's "runas" verb, so Windows shows one UAC prompt per flash and the app itself
//! never runs elevated. Only the labflash.exe installed under Program Files is elevated (where
//! only administrators may change it; a program the user could replace would run as
//! administrator at the next prompt).
//!
//! An elevated process cannot inherit the app's handles, so the app makes two named pipes before
//! the prompt, one each way, and names them on the helper's command line. Each is the first of
//! its name, takes one client, none from another machine, and only this user and the
//! Administrators group may open it (an administrator's password given at the prompt runs the
//! helper as that administrator); lower-integrity processes may neither read nor write it. The
//! name carries the app's process id: the app accepts only the helper's process as the client,
//! and the helper only the app's process as the server, and opens the pipes for identification
//! only, so the app cannot act with the helper's rights.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_CANCELLED, ERROR_NO_DATA, ERROR_PIPE_CONNECTED,
    ERROR_PIPE_LISTENING, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY,
    TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_ACCESS_DUPLEX, SECURITY_IDENTIFICATION,
};
use windows_sys::Win32::System::Com::CoTaskMemFree;
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, GetNamedPipeClientProcessId, GetNamedPipeServerProcessId,
    SetNamedPipeHandleState, PIPE_NOWAIT, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE, PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, GetProcessId, OpenProcessToken, WaitForSingleObject,
    INFINITE,
};
use windows_sys::Win32::UI::Shell::{
    FOLDERID_ProgramFiles, SHGetKnownFolderPath, ShellExecuteExW, SEE_MASK_FLAG_NO_UI,
    SEE_MASK_NOASYNC, SEE_MASK_NOCLOSEPROCESS, SHELLEXECUTEINFOW,
};
use windows_sys::Win32::UI::WindowsAndMessaging::SW_HIDE;

use super::win32::wide;
use crate::error::{Error, Result};
use crate::io::cancellable::CancellableInput;
use crate::io::privilege::Helper;
use crate::io::windows::command_line;
use crate::CancellationToken;

/// Every pipe to a helper is named `\\.\pipe\labflash-helper-<app's pid>-<random hex>`; the
/// helper opens no other.
const PIPE_PREFIX: &str = r"\\.\pipe\labflash-helper-";
/// How often the app looks whether the helper has opened its pipes (or ended) while it starts.
const CONNECT_TICK: Duration = Duration::from_millis(50);

/// Starts the installed `labflash.exe` elevated (Windows shows its UAC prompt) with `args` and the
/// pipes' name, and waits until it has opened both pipes (or ended: a cancel is looked at once
/// the helper holds its pipes, so none is left for another process to make in their name).
pub fn start_helper(args: &[String]) -> Result<Helper> {
    let program = helper_program()?;
    let name = format!("{PIPE_PREFIX}{}-{:016x}", std::process::id(), random());
    let request = make_pipe(&format!("{name}-request"))?;
    let answer = make_pipe(&format!("{name}-answer"))?;
    let mut args = args.to_vec();
    args.extend(["--pipe".to_string(), name]);
    tracing::info!(
        "this user may not write the targets; asking Windows to run the helper elevated"
    );
    let process = run_elevated(&program, &command_line::join(&args))?;
    connect(&request, &process)?;
    connect(&answer, &process)?;
    Ok(Helper {
        input: Box::new(File::from(request)),
        output: Box::new(File::from(answer)),
        said: Box::new(io::empty()),
        process,
    })
}

pub struct HelperProcess {
    handle: OwnedHandle,
    program: PathBuf,
}

impl HelperProcess {
    /// Waits for the helper to end: its exit status.
    pub fn wait(self) -> Result<Option<i32>> {
        // SAFETY: the handle is the helper's process, open until dropped.
        unsafe { WaitForSingleObject(self.handle.as_raw_handle(), INFINITE) };
        self.exit_status()
            .map(|c| Some(c as i32))
            .ok_or_else(|| Error::io(&self.program, io::Error::last_os_error()))
    }

    /// Its exit status, once it has ended.
    fn exited(&self) -> Option<u32> {
        // SAFETY: as above; a zero timeout only asks.
        let ended = unsafe { WaitForSingleObject(self.handle.as_raw_handle(), 0) } == WAIT_OBJECT_0;
        ended.then(|| self.exit_status()).flatten()
    }

    fn exit_status(&self) -> Option<u32> {
        let mut code = 0u32;
        // SAFETY: as above; `code` outlives the call.
        let ok = unsafe { GetExitCodeProcess(self.handle.as_raw_handle(), &mut code) };
        (ok != 0).then_some(code)
    }

    /// Why no answer came: the prompt was answered (or the helper could not have run), so the
    /// helper ran and ended without one.
    pub fn no_answer(code: Option<i32>, _said: &str) -> String {
        let status = code.map_or("its status unknown".into(), |c| status_text(c as u32));
        format!("the helper ran but ended without an answer ({status})")
    }
}

/// An exit status as Windows users look it up: small ones in decimal, NTSTATUS crashes
/// (0xC0000005) in hex.
fn status_text(code: u32) -> String {
    if code >= 0x8000_0000 {
        format!("exit status 0x{code:08X}")
    } else {
        format!("exit status {code}")
    }
}

/// The helper's own side: the app's pipes when it names them, else its stdin and stdout (an
/// administrator's console).
pub fn serving_streams(
    pipe: Option<&str>,
    cancel: &CancellationToken,
) -> Result<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
    let Some(name) = pipe else {
        return Ok((
            Box::new(CancellableInput::new(io::stdin(), cancel.clone())),
            Box::new(io::stdout()),
        ));
    };
    // Elevated, it opens nothing but a helper pipe, served by the app that named it.
    let app = app_of(name).ok_or_else(|| {
        Error::BadInput(format!(
            "{name} is not the name of a labflash helper's pipe"
        ))
    })?;
    let open = |path: String, write: bool| {
        let file = OpenOptions::new()
            .read(!write)
            .write(write)
            // The server may learn who the helper is, never act as it.
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut server = 0u32;
        // SAFETY: a pipe handle just opened; `server` outlives the call.
        let ok = unsafe { GetNamedPipeServerProcessId(file.as_raw_handle(), &mut server) };
        if ok == 0 || server != app {
            return Err(Error::BadInput(format!(
                "{path} is served by process {server}, not by the labflash (process {app}) that named it"
            )));
        }
        Ok(file)
    };
    let input = open(format!("{name}-request"), false)?;
    let output = open(format!("{name}-answer"), true)?;
    Ok((
        Box::new(CancellableInput::new(input, cancel.clone())),
        Box::new(output),
    ))
}

/// The app's process id in a helper pipe's name (`…-<pid>-<16 hex digits>`); none if the name is
/// not a helper pipe's.
fn app_of(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(PIPE_PREFIX)?.split_once('-')?;
    let hex = random.len() == 16 && random.chars().all(|c| c.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit());
    (hex && digits).then(|| pid.parse().ok()).flatten()
}

/// Windows has no root: the window runs as the user, and writing goes through the helper.
pub fn is_root() -> bool {
    false
}

/// `labflash.exe` beside this program, only if that is under Program Files, where only
/// administrators may change it (the installer puts it there).
fn helper_program() -> Result<PathBuf> {
    let refused = |why: String| {
        Error::Permission {
        target: "the drives".into(),
        detail: format!(
            "{why}: install labflash with labflash-setup.exe (it installs into Program Files), or run labflash as administrator"
        ),
    }
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("this program", e))?;
    let helper = std::fs::canonicalize(exe.with_file_name("labflash.exe")).map_err(|e| {
        refused(format!(
            "labflash's helper labflash.exe is not beside {} ({e})",
            exe.display()
        ))
    })?;
    let program_files = program_files()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| refused("the Program Files folder is not known".into()))?;
    if !helper.starts_with(&program_files) {
        return Err(refused(format!(
            "labflash elevates only the labflash.exe installed under {}, not {} (a folder you can change)",
            program_files.display(),
            helper.display()
        )));
    }
    Ok(helper)
}

/// The machine's Program Files folder, from Windows (not from the environment, which the user
/// sets).
fn program_files() -> Option<PathBuf> {
    let mut path = std::ptr::null_mut();
    // SAFETY: a known folder id; `path` is freed below with CoTaskMemFree.
    let found =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramFiles, 0, std::ptr::null_mut(), &mut path) }
            >= 0;
    let text = found.then(|| unsafe { from_wide_ptr(path) });
    // SAFETY: allocated by SHGetKnownFolderPath (null is allowed).
    unsafe { CoTaskMemFree(path.cast()) };
    text.map(PathBuf::from)
}

/// A NUL-terminated UTF-16 string Windows allocated.
///
/// # Safety
/// `text` points to a NUL-terminated UTF-16 string.
unsafe fn from_wide_ptr(text: *const u16) -> String {
    let len = (0..).take_while(|i| *text.add(*i) != 0).count();
    String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
}

/// A number no other process can guess, for the pipes' name (std's hash keys are random).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// One end of a pipe to the helper, made by the app (see the module's comment). Non-blocking until
/// the helper opens it (`connect`). Each pipe carries bytes one way, but is made both ways: making
/// it blocking then needs write access to it (SetNamedPipeHandleState), which a read-only end
/// lacks.
fn make_pipe(name: &str) -> Result<OwnedHandle> {
    let failed = |e: io::Error| Error::Permission {
        target: "the drives".into(),
        detail: format!("the pipe to labflash's helper could not be made ({name}): {e}"),
    };
    // Full access for this user and Administrators only; no reading or writing from a lower
    // integrity level than medium.
    let sddl = format!(
        "D:P(A;;GA;;;{})(A;;GA;;;BA)S:(ML;;NWNR;;;ME)",
        user_sid().map_err(failed)?
    );
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the string is NUL-terminated; the descriptor is freed below with LocalFree.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            wide(&sddl).as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    let attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor,
        bInheritHandle: 0,
    };
    // SAFETY: the name is NUL-terminated and the attributes live across the call.
    let handle = unsafe {
        CreateNamedPipeW(
            wide(name).as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_NOWAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            1 << 20,
            1 << 20,
            0,
            &attributes,
        )
    };
    let made = io::Error::last_os_error();
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(descriptor) };
    if handle == INVALID_HANDLE_VALUE {
        return Err(failed(made));
    }
    // SAFETY: a pipe handle just made, owned from here.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// This process's user, as an SDDL SID string (`S-1-5-21-…`).
fn user_sid() -> io::Result<String> {
    let mut token = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; `token` receives a handle owned below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    // TOKEN_USER and the SID it points into: a SID is at most 68 bytes; u64s keep it aligned.
    let mut buf = [0u64; 32];
    let mut len = 0u32;
    // SAFETY: `buf` is writable for the length given.
    let ok = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(&buf) as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: GetTokenInformation wrote a TOKEN_USER at the start of `buf`.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text = std::ptr::null_mut();
    // SAFETY: `sid` points into `buf`; `text` is freed below with LocalFree.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a NUL-terminated string Windows allocated, freed right after.
    let sid = unsafe { from_wide_ptr(text) };
    unsafe { LocalFree(text.cast()) };
    Ok(sid)
}

/// ShellExecuteEx with "runas": Windows asks for consent (or an administrator's password) and
/// starts the program elevated, its console hidden.
fn run_elevated(program: &Path, parameters: &str) -> Result<HelperProcess> {
    let (verb, file, parameters) = (wide("runas"), wide(program), wide(parameters));
    // SAFETY: a plain C struct; zero is each field's "not given".
    let mut info: SHELLEXECUTEINFOW = unsafe { std::mem::zeroed() };
    info.cbSize = std::mem::size_of::<SHELLEXECUTEINFOW>() as u32;
    info.fMask = SEE_MASK_NOCLOSEPROCESS | SEE_MASK_NOASYNC | SEE_MASK_FLAG_NO_UI;
    info.lpVerb = verb.as_ptr();
    info.lpFile = file.as_ptr();
    info.lpParameters = parameters.as_ptr();
    info.nShow = SW_HIDE;
    // SAFETY: the strings outlive the call; `info` is filled as the call documents.
    if unsafe { ShellExecuteExW(&mut info) } == 0 {
        let e = io::Error::last_os_error();
        let detail = if e.raw_os_error() == Some(ERROR_CANCELLED as i32) {
            "the administrator prompt was declined: writing this drive needs the elevated helper, so accept the prompt (or run labflash as administrator)".to_string()
        } else {
            format!(
                "Windows could not start the helper {}: {e}",
                program.display()
            )
        };
        return Err(Error::Permission {
            target: "the drives".into(),
            detail,
        });
    }
    if info.hProcess.is_null() {
        return Err(Error::Permission {
            target: "the drives".into(),
            detail: format!(
                "Windows started {} but gave no handle to it",
                program.display()
            ),
        });
    }
    Ok(HelperProcess {
        // SAFETY: the helper's process handle, ours to close (SEE_MASK_NOCLOSEPROCESS).
        handle: unsafe { OwnedHandle::from_raw_handle(info.hProcess) },
        program: program.to_path_buf(),
    })
}

/// Waits until the helper opens `pipe` (refusing any other client), then makes it blocking. It
/// fails if the helper ends first.
fn connect(pipe: &OwnedHandle, helper: &HelperProcess) -> Result<()> {
    let ended = |code: u32| Error::Permission {
        target: "the drives".into(),
        detail: format!(
            "the helper ended before it took its pipes ({})",
            status_text(code)
        ),
    };
    loop {
        // SAFETY: our pipe handle; non-blocking, so this only asks. Non-zero means listening.
        let listening = unsafe { ConnectNamedPipe(pipe.as_raw_handle(), std::ptr::null_mut()) };
        // SAFETY: read right after the call.
        let why = unsafe { GetLastError() };
        if listening == 0 && why == ERROR_PIPE_CONNECTED {
            break;
        }
        if let Some(code) = helper.exited() {
            return Err(ended(code));
        }
        if listening == 0 && why != ERROR_PIPE_LISTENING && why != ERROR_NO_DATA {
            return Err(Error::io(
                &helper.program,
                io::Error::from_raw_os_error(why as i32),
            ));
        }
        std::thread::sleep(CONNECT_TICK);
    }
    check_client(pipe.as_raw_handle(), helper)?;
    let mode = PIPE_READMODE_BYTE | PIPE_WAIT;
    // SAFETY: our pipe handle; `mode` outlives the call.
    let ok = unsafe {
        SetNamedPipeHandleState(
            pipe.as_raw_handle(),
            &mode,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if ok == 0 {
        return Err(Error::io(&helper.program, io::Error::last_os_error()));
    }
    Ok(())
}

/// The pipe's client must be the helper's process, not another that opened it first.
fn check_client(pipe: RawHandle, helper: &HelperProcess) -> Result<()> {
    let mut client = 0u32;
    // SAFETY: our pipe and process handles; `client` outlives the call.
    let ok = unsafe { GetNamedPipeClientProcessId(pipe, &mut client) };
    let expected = unsafe { GetProcessId(helper.handle.as_raw_handle()) };
    if ok == 0 || client != expected {
        return Err(Error::Permission {
            target: "the drives".into(),
            detail: format!(
                "another program (process {client}) opened the pipe meant for labflash's helper (process {expected}); nothing was sent to it"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::helper::{Request, PROTOCOL, SUBCOMMAND, VERSION};
    use crate::flash::rules::Chosen;
    use crate::io::drives::SystemRoots;

    /// tests/windows.sh runs this under Wine from the folder labflash-setup.exe installed
    /// labflash.exe in (Program Files): the helper is started through "runas" (Wine has no UAC
    /// prompt, it just starts it), takes both pipes, reads the request from one and answers on
    /// the other. The request names Wine's one disk by its identity; it is a system disk, so the
    /// answer is the helper's refusal of it.
    #[test]
    fn the_elevated_helper_takes_its_pipes_and_answers() {
        if let Err(e) = helper_program() {
            eprintln!("skipped: the elevated helper: {e}");
            return;
        }
        let disk = r"\\.\PhysicalDrive0";
        let listed = crate::io::drives::list(&SystemRoots::default()).unwrap();
        let Some(drive) = listed.iter().find(|d| d.path == disk) else {
            eprintln!("skipped: the elevated helper: this Wine shows no {disk}");
            return;
        };
        let args = [SUBCOMMAND.to_string(), "--target".into(), disk.into()];
        let mut helper = start_helper(&args).unwrap();
        let request = Request {
            protocol: PROTOCOL,
            version: VERSION.into(),
            sha256: "0".repeat(64).parse().unwrap(),
            size: 1 << 20,
            targets: vec![Chosen {
                path: disk.into(),
                identity: Some(drive.identity.clone()),
            }],
            protected: vec![],
            unmount: false,
            allow_fixed: false,
            verify: true,
            skip_equal: false,
            tail_offset: None,
            tail_hex: None,
        };
        let mut line = serde_json::to_vec(&request).unwrap();
        line.push(b'\n');
        helper.input.write_all(&line).unwrap();
        drop(helper.input);
        let mut answer = String::new();
        helper.output.read_to_string(&mut answer).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(answer.lines().last().expect("an answer")).unwrap();
        assert_eq!(last["type"], "failed", "{answer}");
        assert_eq!(last["kind"], "badInput", "{answer}");
        let message = last["message"].as_str().unwrap();
        assert!(
            message.contains(disk) && message.contains("it is a system drive"),
            "{answer}"
        );
        assert_eq!(helper.process.wait().unwrap(), Some(2), "a refusal: exit 2");
    }

    /// The helper opens no path but a helper's pipe, whatever its command line says, and only
    /// one that the process its name gives serves.
    #[test]
    fn the_helper_opens_only_a_helper_pipe_of_the_app_that_named_it() {
        let cancel = CancellationToken::new();
        let ours = format!("{PIPE_PREFIX}{}-{:016x}", std::process::id() + 4, random());
        let made = make_pipe(&format!("{ours}-request")).unwrap();
        let other = [
            r"C:\Windows\System32\config\SAM",
            r"\\.\pipe\other",
            PIPE_PREFIX,
        ];
        for name in other.iter().copied().chain([ours.as_str()]) {
            let err = serving_streams(Some(name), &cancel).err().unwrap();
            assert!(matches!(err, Error::BadInput(_)), "{name}: {err}");
        }
        drop(made);
        assert_eq!(app_of(&format!("{PIPE_PREFIX}12-{:016x}", 7)), Some(12));
    }
}
