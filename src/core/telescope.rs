//! DSA-110's constants, in one place (the station table is `core::stations`).

/// Dish diameter (m): the primary beam's Airy pattern, and the dish size written where a
/// file gives none.
pub const DISH_DIAMETER_M: f64 = 4.65;
