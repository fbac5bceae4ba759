//! What `load_dir` does with symbolic links, special files and empty directories (a user test
//! found dangling links and linked directories skipped without a word).

use super::*;

#[test]
fn an_empty_directory_is_valid_and_says_so() {
    let dir = Scratch::new("empty-says-so");
    dir.write("README.md", "# manifests go here\n");
    let set = load_dir(&dir.0).unwrap();
    assert!(set.apps.is_empty());
    assert!(set.found_no_files());
    assert_eq!(set.files, 0);
    assert_eq!(set.warnings.len(), 1, "{}", render(&set.warnings));
    let w = &set.warnings[0];
    assert_eq!(w.file, dir.0);
    assert_eq!(w.message, "no manifests (*.yaml, *.yml) found");
    assert!(w.help.is_some());

    dir.write("web.yaml", GOOD);
    let set = load_dir(&dir.0).unwrap();
    assert_eq!((set.files, set.found_no_files()), (1, false));
    assert!(set.warnings.is_empty(), "{}", render(&set.warnings));
    let set = load_str(Path::new("m.yaml"), GOOD).unwrap();
    assert_eq!(set.files, 1);
    assert_eq!(load_files(&[]).unwrap().files, 0);
}

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_dangling_yaml_link_is_an_error_naming_it() {
        let dir = Scratch::new("dangling");
        dir.write("web.yaml", GOOD);
        let link = dir.0.join("gone.yaml");
        symlink("nowhere/api.yaml", &link).unwrap();
        let err = load_dir(&dir.0).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1, "{}", render(&err.diagnostics));
        let e = &err.diagnostics[0];
        assert_eq!((e.file.as_path(), e.line, e.column), (link.as_path(), 0, 0));
        assert_eq!(
            e.message,
            "dangling symbolic link: its target `nowhere/api.yaml` does not exist"
        );
        assert_eq!(e.help.as_deref(), Some("fix the link, or remove it"));
    }

    #[test]
    fn a_dangling_link_with_another_name_is_a_warning() {
        let dir = Scratch::new("dangling-other");
        dir.write("web.yaml", GOOD);
        let link = dir.0.join("apps");
        symlink("../elsewhere", &link).unwrap();
        let set = load_dir(&dir.0).unwrap();
        assert_eq!(set.apps.len(), 1);
        assert_eq!(set.warnings.len(), 1, "{}", render(&set.warnings));
        assert_eq!(set.warnings[0].file, link);
        assert!(
            set.warnings[0]
                .message
                .starts_with("dangling symbolic link")
        );
    }

    #[test]
    fn a_linked_directory_is_not_followed_and_a_loop_does_not_hang() {
        let dir = Scratch::new("linked-dir");
        dir.write("web.yaml", GOOD);
        let outside = Scratch::new("linked-dir-outside");
        outside.write(
            "api.yaml",
            &GOOD
                .replace("name: web", "name: api")
                .replace("web:deployment-1", "api:v2"),
        );
        let link = dir.0.join("shared");
        symlink(&outside.0, &link).unwrap();
        // A link back to the root: followed, it would loop for ever.
        dir.write("nested/keep.txt", "");
        symlink("..", dir.0.join("nested/up")).unwrap();
        let set = load_dir(&dir.0).unwrap();
        assert_eq!(
            set.apps.iter().map(FlyApp::app_name).collect::<Vec<_>>(),
            ["web"],
            "the linked directory's manifests are not loaded"
        );
        let got: Vec<(&Path, &str)> = set
            .warnings
            .iter()
            .map(|w| (w.file.as_path(), w.message.as_str()))
            .collect();
        assert_eq!(got.len(), 2, "{}", render(&set.warnings));
        assert_eq!(got[0].0, dir.0.join("nested/up"));
        assert_eq!(got[1].0, link);
        assert!(
            got[1].1.starts_with("symbolic link to the directory `")
                && got[1]
                    .1
                    .ends_with("is not followed: manifests there are not loaded"),
            "{}",
            got[1].1
        );
        assert!(
            set.warnings[1]
                .help
                .as_deref()
                .unwrap()
                .contains("git commit")
        );
    }

    #[test]
    fn a_linked_file_is_read_like_the_file() {
        let dir = Scratch::new("linked-file");
        let real = dir.write("real/web.yml", GOOD);
        symlink(&real, dir.0.join("web-link.yaml")).unwrap();
        dir.write(
            "real/other.txt",
            "not: [yaml", // not a manifest name, so not read
        );
        symlink(dir.0.join("real/other.txt"), dir.0.join("other-link")).unwrap();
        let err = load_dir(&dir.0).unwrap_err();
        // The same manifest twice, through the link and directly: the duplicate is reported.
        assert_eq!(err.diagnostics.len(), 1, "{}", render(&err.diagnostics));
        assert!(
            err.diagnostics[0]
                .message
                .contains("duplicate FlyApp `web`")
        );
    }

    #[test]
    fn a_socket_named_yaml_is_an_error() {
        let dir = Scratch::new("socket");
        let path = dir.0.join("sock.yaml");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = load_dir(&dir.0).unwrap_err();
        assert_eq!(err.diagnostics[0].file, path);
        assert!(
            err.diagnostics[0].message.contains("not a regular file"),
            "{}",
            render(&err.diagnostics)
        );
    }
}
