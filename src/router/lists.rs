//! Merged listings, paged with sealed composite cursors.

use serde_json::{Map, Value};

use super::Router;
use crate::aggregate::catalog::Kind;
use crate::aggregate::cursor::ListCursor;
use crate::aggregate::merge::list_kind;
use crate::protocol::{Era, ErrorObject, Request};

/// One page of the merged listing of `kind` that clients of `era` see.
pub fn list(router: &Router, era: Era, req: &Request, kind: Kind) -> Result<Value, ErrorObject> {
    let cursor = match req.param("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(
            ListCursor::open(token, &router.sealer, list_kind(kind))
                .map_err(ErrorObject::invalid_params)?,
        ),
        Some(_) => return Err(ErrorObject::invalid_params("'cursor' must be a string")),
    };
    let catalog = router.upstreams.catalog(era);
    let page = catalog
        .page(kind, cursor.as_ref(), router.config.page_size)
        .map_err(ErrorObject::invalid_params)?;
    let mut result = Map::with_capacity(2);
    result.insert(kind.field().into(), Value::Array(page.items));
    if let Some(next) = page.next {
        result.insert("nextCursor".into(), Value::from(next.seal(&router.sealer)));
    }
    Ok(Value::Object(result))
}
