//! Merged listings, paged with sealed composite cursors.

use serde_json::{Map, Value};

use super::Router;
use crate::aggregate::catalog::Kind;
use crate::aggregate::cursor::ListCursor;
use crate::aggregate::merge::list_kind;
use crate::pipeline::{Listed, RequestContext};
use crate::protocol::{ErrorObject, Request};

/// One page of the merged listing of `kind` that clients of the request's era see, cut with
/// the caller's filter. A face that writes shared pages itself gets the page in
/// `ctx.listed` and a result without the items (see [`RequestContext::shared_listings`]).
pub fn list(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
    kind: Kind,
) -> Result<Value, ErrorObject> {
    let cursor = match req.param("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(
            ListCursor::open(token, &router.sealer, list_kind(kind))
                .map_err(ErrorObject::invalid_params)?,
        ),
        Some(_) => return Err(ErrorObject::invalid_params("'cursor' must be a string")),
    };
    let catalog = router.upstreams.catalog(ctx.era());
    let (size, filter) = (router.config.page_size, ctx.list_filter.as_deref());
    let mut result = Map::with_capacity(2);
    let next = if ctx.shared_listings {
        let page = catalog
            .shared_page(kind, cursor.as_ref(), size, filter)
            .map_err(ErrorObject::invalid_params)?;
        let next = page.next.clone();
        let _ = ctx.listed.set(Listed {
            field: kind.field(),
            page,
        });
        next
    } else {
        let page = catalog
            .page(kind, cursor.as_ref(), size, filter)
            .map_err(ErrorObject::invalid_params)?;
        result.insert(kind.field().into(), Value::Array(page.items));
        page.next
    };
    if let Some(next) = next {
        result.insert("nextCursor".into(), Value::from(next.seal(&router.sealer)));
    }
    Ok(Value::Object(result))
}
