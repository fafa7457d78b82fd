//! Write sessions: the marker format lives in [`kopr_format::session`]; re-exported here for
//! the repository's writers and maintenance.

pub(crate) use kopr_format::session::{
    generate_session_id, session_id_from_blob_id, SessionInfo, SESSION_PREFIX,
};
